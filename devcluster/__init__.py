"""Development tooling: a local cluster emulator (kube-apiserver + kubelet) and `up`/`demo`."""
