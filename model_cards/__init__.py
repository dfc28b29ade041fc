"""Model cards for run folders and publishing them to the Hugging Face Hub (see DESIGN.md)."""
