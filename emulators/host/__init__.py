"""A local stand-in for the Azure Functions host, for Service Bus queue triggers only.

The real host cannot run on these machines (its tools download a .NET runtime). This one gives the
same trigger semantics for a Python v2 app: peek-lock receive, `ServiceBusMessage` fields as the host
fills them, complete on return, abandon on exception, `maxConcurrentCalls`, lock renewal, and a clean
shutdown. Run it with ``python -m emulators.host`` (see ``__main__``).
"""
