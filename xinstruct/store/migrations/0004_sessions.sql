ALTER TABLE users ADD COLUMN cred_version INTEGER;  -- bumped by a password or role change (NULL = 1)
ALTER TABLE users ADD COLUMN disabled BOOLEAN;      -- NULL = false
CREATE TABLE sessions (
    id VARCHAR PRIMARY KEY,            -- sha256 of the token's random part (the token itself is never stored)
    user_name VARCHAR NOT NULL,
    cred_version INTEGER NOT NULL,     -- the user's cred_version at login; a different one ends the session
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    last_seen TIMESTAMP NOT NULL,
    revoked_at TIMESTAMP               -- logout, disable, delete, password or role change
);
CREATE TABLE login_guard (             -- one row per login name: the lockout decision, claimed atomically
    name VARCHAR PRIMARY KEY,
    window_start TIMESTAMP NOT NULL,
    failures INTEGER NOT NULL,         -- attempts claimed in this window and not (yet) successful
    locked_until TIMESTAMP
);
