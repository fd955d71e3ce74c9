"""The production topology (docker-compose.yml) built and run on this machine's engine,
and what its live test and benchmark share (see __main__ for the commands)."""
