"""Around a trained network: plots, the filters of a conv net, ensembles."""
