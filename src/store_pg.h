/* The PostgreSQL implementation of the store: store_open (declared in
 * store.h, with store_migrate) returns a store with these operations. */
#ifndef ACP_STORE_PG_H
#define ACP_STORE_PG_H

#include "store.h"

extern const store_ops store_pg_ops;

#endif
