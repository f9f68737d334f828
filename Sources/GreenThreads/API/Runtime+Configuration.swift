extension Runtime {
    /// The configuration this runtime was built with.
    ///
    /// For code that watches a runtime from outside and needs its settings
    /// to read its counts: `stats.stacksMapped × configuration.stackSize`
    /// is the address space the green threads' stacks hold, which is what a
    /// metrics bridge reports as stack memory.
    public var configuration: Configuration { core.configuration }
}
