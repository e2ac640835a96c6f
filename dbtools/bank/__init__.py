"""Model banks: the file format, model selection, the catalogue and the DeepBind import."""
