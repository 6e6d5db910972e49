-- A dispatch pause of one upstream (Dream Engines answered 402: out of credits), shared by every dreamd
-- process on this database: the process that meets the 402 records it, the others apply it, and a resume
-- through any of them deletes it.
CREATE TABLE upstream_pauses (
    upstream     text PRIMARY KEY,
    paused_until timestamptz NOT NULL,
    reason       text NOT NULL,
    paused_at    timestamptz NOT NULL DEFAULT now()
);
