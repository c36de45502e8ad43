"""RunPod serverless entry point under the seed's name: ``serverless_handler.handler``."""

from pagemill.serverless_handler import handler

__all__ = ["handler"]

if __name__ == "__main__":
    import runpod  # the RunPod worker SDK: only in the serverless image

    runpod.serverless.start({"handler": handler})
