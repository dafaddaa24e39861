"""The human side: agents, teams and their hours, the live inbox, handoff rules, CSAT."""
