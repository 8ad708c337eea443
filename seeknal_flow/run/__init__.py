"""Plans into work: the run service, the Engine protocol and its local and Spark engines,
node contexts, feature checks, PEP 723 isolation, dry runs and ``apply``.
"""
