# the testbench modules (tb_*.py) and their shared half (streaming.py) only import inside a
# simulator (cocotb triggers, the run's environment); keep doctest collection away from them
collect_ignore = ["streaming.py"]
collect_ignore_glob = ["tb_*.py"]
