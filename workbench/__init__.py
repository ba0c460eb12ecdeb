"""Fusion Workbench: does a fused pool of models beat the best single one, and why?"""
