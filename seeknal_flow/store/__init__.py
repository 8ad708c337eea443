"""What runs leave behind for readers: the entity store (consolidation, catalogs), the online
store, saved models and point-in-time training sets.
"""
