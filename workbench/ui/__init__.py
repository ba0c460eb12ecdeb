"""The browser face of the workbench (Gradio). Rendering helpers here are pure and need no Gradio."""
