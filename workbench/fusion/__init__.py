"""The fusion engine: fan a prompt out to a pool, run the mode (``modes/``), judge, and stream events."""
