"""empexp's Gradio app and the entry point of its Space: ``python app.py --help``."""

from pathlib import Path

from empexp.app.entry import main

if __name__ == "__main__":
    main(Path(__file__).parent)
