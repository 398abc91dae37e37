"""Practice administration: the writes behind the /practice/ pages. Each
service checks that the actor administers the object's practice, runs in one
transaction, and writes an audit event naming the actor."""
