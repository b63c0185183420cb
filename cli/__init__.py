"""``byom``: submit files, watch jobs, follow done events and read a job's logs."""
