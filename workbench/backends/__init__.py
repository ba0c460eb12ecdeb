"""Model backends: local transformers models, the offline tiny Llama 4, OpenAI-compatible endpoints."""
