// Command etcd is upstream etcd's own entry point, built at the version pinned in go.mod
// so the control plane needs nothing prebuilt.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
