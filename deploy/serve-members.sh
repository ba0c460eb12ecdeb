#!/usr/bin/env bash
# The members of deploy/models.toml on vLLM, one OpenAI-compatible server each. Run each block on the node named
# in the models file (or change base_url there). Sizes: see deploy/README.md ("Sizing").
set -euo pipefail
what=${1:?usage: serve-members.sh scout-int4|scout-fp8|qwen-vl|sglang-scout-bf16}
common=(--max-model-len 32768 --limit-mm-per-prompt '{"image": 4}' --gpu-memory-utilization 0.90)
case "$what" in
  scout-int4)   # ~56 GiB of weights: one 80 GB GPU
    CUDA_VISIBLE_DEVICES=${GPUS:-0} vllm serve RedHatAI/Llama-4-Scout-17B-16E-Instruct-quantized.w4a16 \
      --port 8000 --tensor-parallel-size 1 "${common[@]}" ;;
  scout-fp8)    # ~104 GiB of weights: two 80 GB GPUs (or one H200)
    CUDA_VISIBLE_DEVICES=${GPUS:-1,2} vllm serve RedHatAI/Llama-4-Scout-17B-16E-Instruct-FP8-dynamic \
      --port 8001 --tensor-parallel-size 2 "${common[@]}" ;;
  qwen-vl)      # ~16 GiB: any one GPU
    CUDA_VISIBLE_DEVICES=${GPUS:-0} vllm serve Qwen/Qwen2.5-VL-7B-Instruct --port 8000 "${common[@]}" ;;
  sglang-scout-bf16)  # ~202 GiB of weights: four 80 GB GPUs
    python -m sglang.launch_server --model-path meta-llama/Llama-4-Scout-17B-16E-Instruct --tp 4 \
      --host 0.0.0.0 --port 30000 --context-length 32768 ;;
  *) echo "unknown member: $what" >&2; exit 2 ;;
esac
