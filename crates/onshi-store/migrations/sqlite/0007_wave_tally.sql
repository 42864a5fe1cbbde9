-- Each campaign's deployments counted by what a wave's health gate reads (onshi_core::waves):
-- the wave (-1: a site not dealt, counted in the last wave), terminal or not, the state, an
-- unhealthy self-check, a restart without the new version. Kept by triggers on `deployments`
-- in the same transaction as every change, so the gates read a few rows per campaign instead
-- of grouping every deployment each round. The one time-dependent count (a restart without
-- the new version overdue) is read from the few restarted rows through a partial index.
-- `wave_sizes`: each wave's number of sites, written when the sites are dealt.
-- SQLite's text; PostgreSQL's is postgres/0007_wave_tally.sql (a trigger function).

CREATE TABLE wave_tally (
    campaign_id TEXT NOT NULL,
    wave        INTEGER NOT NULL,
    terminal    INTEGER NOT NULL,
    state       TEXT NOT NULL,
    unhealthy   INTEGER NOT NULL,
    restarted   INTEGER NOT NULL,
    n           INTEGER NOT NULL,
    PRIMARY KEY (campaign_id, wave, terminal, state, unhealthy, restarted)
);

CREATE TABLE wave_sizes (
    campaign_id TEXT NOT NULL,
    wave        INTEGER NOT NULL,
    sites       INTEGER NOT NULL,
    PRIMARY KEY (campaign_id, wave)
);

CREATE INDEX deployments_restarted ON deployments (campaign_id, restarted_at)
    WHERE restarted_at IS NOT NULL;

INSERT INTO wave_tally (campaign_id, wave, terminal, state, unhealthy, restarted, n)
SELECT p.campaign_id, COALESCE(w.wave, -1),
       CASE WHEN d.kind = 'terminal' THEN 1 ELSE 0 END, p.state,
       CASE WHEN p.health = 'unhealthy' THEN 1 ELSE 0 END,
       CASE WHEN p.restarted_at IS NOT NULL THEN 1 ELSE 0 END, COUNT(*)
FROM deployments p JOIN devices d ON d.id = p.device_id
LEFT JOIN wave_sites w ON w.campaign_id = p.campaign_id AND w.institution_code = d.institution_code
GROUP BY 1, 2, 3, 4, 5, 6;

INSERT INTO wave_sizes (campaign_id, wave, sites)
SELECT campaign_id, wave, COUNT(*) FROM wave_sites GROUP BY campaign_id, wave;

CREATE TRIGGER wave_tally_insert AFTER INSERT ON deployments
BEGIN
    INSERT INTO wave_tally (campaign_id, wave, terminal, state, unhealthy, restarted, n)
    SELECT NEW.campaign_id, COALESCE(w.wave, -1),
           CASE WHEN d.kind = 'terminal' THEN 1 ELSE 0 END, NEW.state,
           CASE WHEN NEW.health = 'unhealthy' THEN 1 ELSE 0 END,
           CASE WHEN NEW.restarted_at IS NOT NULL THEN 1 ELSE 0 END, 1
    FROM devices d
    LEFT JOIN wave_sites w ON w.campaign_id = NEW.campaign_id AND w.institution_code = d.institution_code
    WHERE d.id = NEW.device_id
    ON CONFLICT (campaign_id, wave, terminal, state, unhealthy, restarted) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER wave_tally_delete AFTER DELETE ON deployments
BEGIN
    UPDATE wave_tally SET n = n - 1
    WHERE campaign_id = OLD.campaign_id
      AND (wave, terminal) = (
          SELECT COALESCE(w.wave, -1), CASE WHEN d.kind = 'terminal' THEN 1 ELSE 0 END
          FROM devices d
          LEFT JOIN wave_sites w ON w.campaign_id = OLD.campaign_id AND w.institution_code = d.institution_code
          WHERE d.id = OLD.device_id)
      AND state = OLD.state
      AND unhealthy = CASE WHEN OLD.health = 'unhealthy' THEN 1 ELSE 0 END
      AND restarted = CASE WHEN OLD.restarted_at IS NOT NULL THEN 1 ELSE 0 END;
END;

CREATE TRIGGER wave_tally_update AFTER UPDATE OF state, health, restarted_at ON deployments
WHEN OLD.state IS NOT NEW.state
  OR COALESCE(OLD.health = 'unhealthy', 0) <> COALESCE(NEW.health = 'unhealthy', 0)
  OR (OLD.restarted_at IS NULL) IS NOT (NEW.restarted_at IS NULL)
BEGIN
    UPDATE wave_tally SET n = n - 1
    WHERE campaign_id = OLD.campaign_id
      AND (wave, terminal) = (
          SELECT COALESCE(w.wave, -1), CASE WHEN d.kind = 'terminal' THEN 1 ELSE 0 END
          FROM devices d
          LEFT JOIN wave_sites w ON w.campaign_id = OLD.campaign_id AND w.institution_code = d.institution_code
          WHERE d.id = OLD.device_id)
      AND state = OLD.state
      AND unhealthy = CASE WHEN OLD.health = 'unhealthy' THEN 1 ELSE 0 END
      AND restarted = CASE WHEN OLD.restarted_at IS NOT NULL THEN 1 ELSE 0 END;
    INSERT INTO wave_tally (campaign_id, wave, terminal, state, unhealthy, restarted, n)
    SELECT NEW.campaign_id, COALESCE(w.wave, -1),
           CASE WHEN d.kind = 'terminal' THEN 1 ELSE 0 END, NEW.state,
           CASE WHEN NEW.health = 'unhealthy' THEN 1 ELSE 0 END,
           CASE WHEN NEW.restarted_at IS NOT NULL THEN 1 ELSE 0 END, 1
    FROM devices d
    LEFT JOIN wave_sites w ON w.campaign_id = NEW.campaign_id AND w.institution_code = d.institution_code
    WHERE d.id = NEW.device_id
    ON CONFLICT (campaign_id, wave, terminal, state, unhealthy, restarted) DO UPDATE SET n = n + 1;
END;
