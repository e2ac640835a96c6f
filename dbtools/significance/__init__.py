"""Background score distributions and p-values: how unusual a model's score is on background sequence."""
