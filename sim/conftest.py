# sim/streaming.py only imports inside a simulator (cocotb triggers); keep doctest
# collection away from it
collect_ignore = ["streaming.py"]
