package sink

import (
	"fmt"

	"github.com/tablelog/tablelog/internal/schema"
)

// Catalog columns. The first write of a process into a log partition
// "<service>_<yyyyMMdd>" also inserts, into the same table, the entity
//
//	PartitionKey = schema.CatalogPartition ("~catalog")
//	RowKey       = the log PartitionKey
//	Service      = the service name (Edm.String)
//	Day          = the UTC day as "yyyyMMdd" (Edm.String)
//
// so readers list services and days from one small partition instead of
// scanning the table. The insert is insert-only (an add-only SAS suffices);
// when another process has written the same day already, the service's
// "already exists" answer counts as success.
const (
	CatalogColService = "Service"
	CatalogColDay     = "Day"
)

// catalogEntity returns the catalog entity JSON for log partition pk.
func (s *Sink) catalogEntity(pk string) ([]byte, error) {
	service, day, _, err := schema.ParsePartitionKey(pk)
	if err != nil {
		return nil, err
	}
	b := make([]byte, 0, 96+2*len(pk))
	b = append(b, `{"PartitionKey":"`...)
	b = append(b, schema.CatalogPartition...)
	b = append(b, `","RowKey":"`...)
	b = append(b, pk...) // service names and days need no JSON escaping
	b = append(b, `","`+CatalogColService+`":"`...)
	b = append(b, service...)
	b = append(b, `","`+CatalogColDay+`":"`...)
	b = day.AppendFormat(b, schema.DayLayout)
	b = append(b, `"}`...)
	return b, nil
}

// writeCatalog records partition pk in the catalog, retrying transient
// failures. A permanent failure is reported; the logs are written anyway.
func (s *Sink) writeCatalog(pk string) {
	entity, err := s.catalogEntity(pk)
	if err == nil {
		if e := s.insertOne(entity); e != nil {
			if e.class == aborted {
				return
			}
			err = e
		}
	}
	if err != nil {
		s.opts.ErrorHandler(fmt.Errorf("sink: cannot record partition %s in the catalog: %w", pk, err))
		return
	}
	s.c.catalogWrites.Add(1)
}
