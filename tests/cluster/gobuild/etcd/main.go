// Command etcd is the etcd server, built from the same module graph as the
// Kubernetes components so its version matches the apiserver's client.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
