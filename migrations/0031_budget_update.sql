-- sessions.update(budget=…) (issue #23): a budget may be replaced or removed, never added to a
-- session created without one, and once removed never re-added (the SDK's `budget_create_only`).
-- The flag remembers a removal; the budget column itself is NULL then, as for a session that
-- never had one.
ALTER TABLE drover.sessions ADD COLUMN budget_removed boolean NOT NULL DEFAULT false;
