package console

import "github.com/redis-manager/redis-manager/api"

// instanceFigures are the load figures of one instance the pages show.
type instanceFigures struct {
	ops       figure
	clients   figure
	maxmemory int64
}

// figuresOf reads an instance's load figures from its observed status.
// The API leaves them 0 when unknown; an instance observed up was read,
// so its 0 is a real 0, and a down one's figures are unknown.
func figuresOf(in api.InstanceStatus) instanceFigures {
	return instanceFigures{
		ops:       figure{Value: in.OpsPerSec, Known: in.Up},
		clients:   figure{Value: in.ConnectedClients, Known: in.Up},
		maxmemory: in.MaxmemoryBytes,
	}
}
