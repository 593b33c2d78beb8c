"""Run rendered pods as local processes: the machinery shared by `incluster run` and the
dev cluster's pod runner.

A pod is turned into a plan (``plan.plan_pod``: pure, pod spec + lookups -> files to
write, env, argv), the plan is materialised on disk (``materialise``), and its containers
run under the process supervisor (``supervisor``). The image is ignored: the container's
``command``/``args`` run on this machine, with every volume materialised under a per-pod
directory and every mount path named in env values, argv and ``workingDir`` rewritten to
the materialised path (``paths.remap``; rule documented in docs/local.md).
"""
