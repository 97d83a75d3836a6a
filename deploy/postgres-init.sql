-- Temporal's auto-setup creates its own schemas; SorAPI's tables live in the `sorapi` database.
SELECT 1;
