# Pinned versions of the test bed's components. Sourced by the other scripts.
# Changing any of these makes build.sh rebuild everything in bin/.
KUBE_VERSION=v1.37.2       # k8s.io/kubernetes (staging modules are v0.<minor>.<patch>)
ETCD_VERSION=v3.6.16       # go.etcd.io/etcd/server/v3 and its sibling modules
KWOK_VERSION=v0.8.0        # sigs.k8s.io/kwok
