"""seeknal-flow: Arrow-native streaming dataflow for feature-store pipelines."""
