// touchstone-replay: rebuild, verify and time-travel projections from the log (issue 6).
print("touchstone-replay: not built yet")
