//! One site's terminal as a task: its agent runs while the terminal is powered on, and the
//! demo's driver switches it off and on and has staff restart it. A power cycle is a restart:
//! the terminal comes back running whatever is installed (`Agent::boot`). When the simulated
//! clock changes speed, the agent is opened again with the new pace (stopping an agent is safe
//! at any point), so its waits follow the clock.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use onshi_agent::{Agent, Client, Options};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// What the driver does to a site's terminal.
#[derive(Debug, Clone, Copy)]
pub enum Command {
    /// Staff switch the terminal off in the evening: the agent stops wherever it is.
    PowerOff,
    /// Staff switch it on in the morning: it boots into the installed version.
    PowerOn,
    /// Staff restart the terminal application (再起動), which then runs the installed version.
    Restart,
    /// The simulated clock changed speed: the agent continues with these options.
    Pace(Options),
}

/// A running site task.
pub struct SiteTask {
    tx: Option<mpsc::UnboundedSender<Command>>,
    restarting: Arc<AtomicBool>,
    join: JoinHandle<anyhow::Result<()>>,
}

impl SiteTask {
    /// Starts the site's agent, powered on; `client` reopens it when the pace changes.
    pub fn spawn(agent: Agent, client: Client) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let restarting = Arc::new(AtomicBool::new(false));
        let join = tokio::spawn(run(agent, client, rx, restarting.clone()));
        Self {
            tx: Some(tx),
            restarting,
            join,
        }
    }

    /// Tells the site to do something; a site whose task ended ignores it.
    pub fn send(&self, command: Command) {
        if matches!(command, Command::Restart) {
            self.restarting.store(true, Ordering::SeqCst);
        }
        if let Some(tx) = &self.tx {
            let _ = tx.send(command);
        }
    }

    /// Whether a restart was asked for and has not finished yet (patients wait meanwhile).
    pub fn restarting(&self) -> bool {
        self.restarting.load(Ordering::SeqCst)
    }

    /// Tells the agent to stop (it stops wherever it is; see [`SiteTask::join`]).
    pub fn close(&mut self) {
        self.tx = None;
    }

    /// Waits (briefly) for a closed site's agent to stop; answers the error it stopped with, if
    /// it did not stop cleanly.
    pub async fn join(mut self) -> Option<String> {
        self.close();
        match tokio::time::timeout(Duration::from_secs(10), self.join).await {
            Ok(Ok(Ok(()))) => None,
            Ok(Ok(Err(e))) => Some(format!("{e:#}")),
            Ok(Err(e)) => Some(format!("the site task failed: {e}")),
            Err(_) => Some("the agent did not stop within 10 s".to_owned()),
        }
    }
}

async fn run(
    mut agent: Agent,
    client: Client,
    mut rx: mpsc::UnboundedReceiver<Command>,
    restarting: Arc<AtomicBool>,
) -> anyhow::Result<()> {
    let mut powered = true;
    loop {
        let command = if powered {
            let mut got = None;
            agent
                .run(async {
                    got = rx.recv().await;
                })
                .await?;
            got
        } else {
            rx.recv().await
        };
        match command {
            // The demo is stopping.
            None => return Ok(()),
            Some(Command::PowerOff) => powered = false,
            Some(Command::PowerOn) => {
                if !powered {
                    agent.boot()?;
                    powered = true;
                }
            }
            Some(Command::Restart) => {
                let done = if powered {
                    agent.restart().await.map(|_| ())
                } else {
                    Ok(())
                };
                restarting.store(false, Ordering::SeqCst);
                done?;
            }
            Some(Command::Pace(options)) => {
                agent = Agent::open(agent.dir().clone(), client.clone(), options)?;
            }
        }
    }
}
