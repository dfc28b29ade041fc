"""The Hugging Face Space's entry point (README front matter `app_file`): the Gradio app of apps/gradio_app.py.

A Space runs `python app.py` from the repository root, which makes the product's packages importable without
installing them.
"""

from apps.gradio_app import main

if __name__ == "__main__":
    main()
