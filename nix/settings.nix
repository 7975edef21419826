# Settings shared by the container image (nix/image.nix) and the Kubernetes
# manifests (nix/k8s/): plain data, no nixpkgs needed.
#   nix-instantiate --eval --strict --json nix/settings.nix
# make check-deploy cross-checks the manifests against these values.
{
  name = "krappyd";
  version = "0.1.0";
  dataPort = 7070;
  adminPort = 7071;
  # The Kafka listener (--kafka-listen): Kafka clients bootstrap through the
  # client Service and then connect to the pod's advertised DNS name.
  kafkaPort = 9092;
  # Raft between the nodes of a cluster (--raft-listen); the 3-replica
  # overlay (nix/k8s/overlays/cluster) publishes it on the headless Service.
  raftPort = 7072;
  dataDir = "/data";
  user = "krappy";
  uid = 10001;
  gid = 10001;
  # krappyd drains replies for this long on SIGTERM (--shutdown-timeout) ...
  shutdownTimeoutSeconds = 10;
  # ... so Kubernetes waits longer than that before SIGKILL.
  terminationGracePeriodSeconds = 30;
  # krappyd's arguments in the image and the StatefulSet.
  args = [
    "--listen" "0.0.0.0:7070"
    "--http" "0.0.0.0:7071"
    "--kafka-listen" "0.0.0.0:9092"
    "--data" "/data"
    "--log-format" "json"
    "--shutdown-timeout" "10s"
  ];
  # The 3-replica cluster (nix/k8s/overlays/cluster): each pod runs args
  # followed by clusterArgs; its node id is its ordinal plus one (auto), its
  # peers (KRAPPY_PEERS) the pods' names in the headless Service.
  clusterReplicas = 3;
  clusterArgs = [
    "--raft-listen" "0.0.0.0:7072"
    "--node-id" "auto"
  ];
  # On SIGTERM a leader first hands leadership over (at most this long,
  # KR_CLUSTER_HANDOVER_MS), then drains: the grace period covers both.
  handoverSeconds = 3;
}
