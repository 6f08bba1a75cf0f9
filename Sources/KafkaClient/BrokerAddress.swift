import Posix

/// A broker's client listener: where the tools connect.
public typealias BrokerAddress = SocketAddress
public typealias BrokerAddressError = SocketAddressError
