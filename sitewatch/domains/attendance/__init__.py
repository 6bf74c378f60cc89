"""Real-name attendance: the worker registry, the gate-event ledger, and what is derived
from it (who is on site, hours, headcount, day-labour sheets). See docs/attendance.md."""
