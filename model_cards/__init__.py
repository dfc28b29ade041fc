"""Model cards for run folders and publishing them to the Hugging Face Hub (docs/DESIGN.md, "The run folder")."""
