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
}
