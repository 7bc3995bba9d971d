"""The data SDK that workload code uses: artifacts, secrets, logs (and, later, the warehouse,
OLTP and graph stores). Every call is authorized for the acting principal: the user, or a
workload's service account as the metadata endpoint reports it."""
