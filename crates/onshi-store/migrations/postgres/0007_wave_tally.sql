-- Each campaign's deployments counted by what a wave's health gate reads: see
-- sqlite/0007_wave_tally.sql, of which this is PostgreSQL's text. One trigger function keeps the
-- tally. Each count is split over 16 rows (`stripe`, the device id modulo 16): the row locks
-- of a report's transaction are held until it commits, and replicas reporting hundreds of
-- devices a second moving between the same two states would otherwise wait for each other on
-- one row. An update that moves a device from one count to another takes the two rows' locks
-- in key order, so two reports moving devices in opposite directions cannot deadlock.

CREATE TABLE wave_tally (
    campaign_id TEXT NOT NULL,
    wave        BIGINT NOT NULL,
    terminal    BIGINT NOT NULL,
    state       TEXT NOT NULL,
    unhealthy   BIGINT NOT NULL,
    restarted   BIGINT NOT NULL,
    stripe      BIGINT NOT NULL,
    n           BIGINT NOT NULL,
    PRIMARY KEY (campaign_id, wave, terminal, state, unhealthy, restarted, stripe)
);

CREATE TABLE wave_sizes (
    campaign_id TEXT NOT NULL,
    wave        BIGINT NOT NULL,
    sites       BIGINT NOT NULL,
    PRIMARY KEY (campaign_id, wave)
);

CREATE INDEX deployments_restarted ON deployments (campaign_id, restarted_at)
    WHERE restarted_at IS NOT NULL;

INSERT INTO wave_tally (campaign_id, wave, terminal, state, unhealthy, restarted, stripe, n)
SELECT p.campaign_id, COALESCE(w.wave, -1),
       CASE WHEN d.kind = 'terminal' THEN 1 ELSE 0 END, p.state,
       CASE WHEN p.health = 'unhealthy' THEN 1 ELSE 0 END,
       CASE WHEN p.restarted_at IS NOT NULL THEN 1 ELSE 0 END, p.device_id % 16, COUNT(*)
FROM deployments p JOIN devices d ON d.id = p.device_id
LEFT JOIN wave_sites w ON w.campaign_id = p.campaign_id AND w.institution_code = d.institution_code
GROUP BY 1, 2, 3, 4, 5, 6, 7;

INSERT INTO wave_sizes (campaign_id, wave, sites)
SELECT campaign_id, wave, COUNT(*) FROM wave_sites GROUP BY campaign_id, wave;

CREATE FUNCTION wave_tally_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    campaign TEXT;
    device_stripe BIGINT;
    site_wave BIGINT;
    is_terminal BIGINT;
    old_key TEXT;
    new_key TEXT;
    step RECORD;
BEGIN
    IF TG_OP = 'INSERT' THEN
        campaign := NEW.campaign_id;
        device_stripe := NEW.device_id % 16;
        SELECT COALESCE(w.wave, -1), CASE WHEN d.kind = 'terminal' THEN 1 ELSE 0 END
          INTO site_wave, is_terminal
          FROM devices d
          LEFT JOIN wave_sites w ON w.campaign_id = NEW.campaign_id AND w.institution_code = d.institution_code
         WHERE d.id = NEW.device_id;
    ELSE
        campaign := OLD.campaign_id;
        device_stripe := OLD.device_id % 16;
        SELECT COALESCE(w.wave, -1), CASE WHEN d.kind = 'terminal' THEN 1 ELSE 0 END
          INTO site_wave, is_terminal
          FROM devices d
          LEFT JOIN wave_sites w ON w.campaign_id = OLD.campaign_id AND w.institution_code = d.institution_code
         WHERE d.id = OLD.device_id;
    END IF;
    IF TG_OP <> 'INSERT' THEN
        old_key := OLD.state || '/' || CASE WHEN OLD.health = 'unhealthy' THEN 1 ELSE 0 END
                   || '/' || CASE WHEN OLD.restarted_at IS NOT NULL THEN 1 ELSE 0 END;
    END IF;
    IF TG_OP <> 'DELETE' THEN
        new_key := NEW.state || '/' || CASE WHEN NEW.health = 'unhealthy' THEN 1 ELSE 0 END
                   || '/' || CASE WHEN NEW.restarted_at IS NOT NULL THEN 1 ELSE 0 END;
    END IF;
    IF old_key IS NOT DISTINCT FROM new_key THEN
        RETURN NULL;
    END IF;
    FOR step IN
        SELECT k.key, k.delta FROM (VALUES (old_key, -1), (new_key, 1)) AS k (key, delta)
         WHERE k.key IS NOT NULL
         ORDER BY k.key
    LOOP
        INSERT INTO wave_tally AS t
            (campaign_id, wave, terminal, state, unhealthy, restarted, stripe, n)
        VALUES (campaign, site_wave, is_terminal,
                split_part(step.key, '/', 1), split_part(step.key, '/', 2)::BIGINT,
                split_part(step.key, '/', 3)::BIGINT, device_stripe, step.delta)
        ON CONFLICT (campaign_id, wave, terminal, state, unhealthy, restarted, stripe)
        DO UPDATE SET n = t.n + EXCLUDED.n;
    END LOOP;
    RETURN NULL;
END;
$$;

CREATE TRIGGER wave_tally AFTER INSERT OR DELETE OR UPDATE OF state, health, restarted_at
    ON deployments FOR EACH ROW EXECUTE FUNCTION wave_tally_change();
