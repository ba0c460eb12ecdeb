"""The browser face of the workbench (Gradio): tabs, pool editing, events -> view updates. Imports only downward."""
