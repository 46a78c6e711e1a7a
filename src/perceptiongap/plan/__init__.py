"""Plan a reader study before running it: simulated power for readers x exams x design."""
