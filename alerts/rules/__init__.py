"""Alert rule evaluation: the rules of the device profiles, interpreted by typed code."""
