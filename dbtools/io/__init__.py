"""Reading and writing files: sequences, genomes, regions, VCF, tracks, atomic outputs."""
