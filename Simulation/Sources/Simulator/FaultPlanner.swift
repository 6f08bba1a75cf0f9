import SimWorld
import TernCore

/// Plans faults from what it sees of the cluster — who leads, who is down — where the nemesis's
/// schedule ignores what the nodes do. A scenario uses one to aim faults at the nodes that matter
/// at the moment (the current leader of a partition, the active controller).
public protocol FaultPlanner: AnyObject {
    /// Consulted at every periodic check of the safety phase (never in the liveness phase). A
    /// fault with a zero delay applies at once, counted and traced as the nemesis's are; an action
    /// with a later delay must be a healing one (a resume, a restart, the end of a partition), and
    /// is scheduled like a scripted action, so it still runs once the liveness phase began.
    func plan(in simulation: SimulationView) -> [(delay: Duration, action: FaultAction)]
}
