"""One episode: the agent loop, models, tools, suites and judges (suite kinds: ``memento_lab.tasks``)."""
