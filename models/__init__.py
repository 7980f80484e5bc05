"""The shipped default model (installed as ``facecolor.shipped``); see README.md here."""
