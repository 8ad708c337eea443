"""What must run and why: fingerprints, run state, RUN/SKIP reasons, partitions, the manifest and lineage."""
