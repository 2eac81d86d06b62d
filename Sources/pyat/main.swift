print("pyat")
