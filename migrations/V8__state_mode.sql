-- Facts about the state file itself (design §8: a state file belongs to one Credgenics mode,
-- `lending` or `credit_line`; switching is refused).
CREATE TABLE state_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
