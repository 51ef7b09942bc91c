//! Errors the Kafka consumer returns instead of a message, in a bounded set of kinds (the
//! `kind` label of `stockwatch_consumer_errors_total`), and what follows each.
//!
//! What is known of one: its librdkafka code, and whether librdkafka marked it fatal. Not its
//! topic, partition or offset: librdkafka's consumer error carries them (and a text naming
//! them), but rdkafka 0.39's `BaseConsumer::poll` keeps only the code
//! (`KafkaError::MessageConsumption(code)` / `MessageConsumptionFatal(code)`; the partition
//! only for `PartitionEOF`) and destroys the event. So no dead letter can stand for the
//! records a consumer error skipped: the error is counted, logged and alerted on
//! (`StockwatchConsumerErrors`), and `docs/runbook.md` says how to find the gap.

use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

/// A consumer error's kind. The `as_str` names are the metric's label values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ConsumerErrorKind {
    /// A message set librdkafka could not parse (`ERR__BAD_MSG`: corrupt, failed its CRC
    /// check with `check.crcs`; `ERR__NOT_IMPLEMENTED`: an unsupported message format or
    /// codec; the broker's `CORRUPT_MESSAGE`). librdkafka skips it: its records are not
    /// processed.
    BadMessage,
    /// A message set librdkafka could not decompress (`ERR__BAD_COMPRESSION`). librdkafka
    /// skips it: its records are not processed.
    BadCompression,
    /// The partition has no valid position (its offset out of range, or nothing committed)
    /// and `auto.offset.reset` is `error` (`ERR__AUTO_OFFSET_RESET`, `OFFSET_OUT_OF_RANGE`):
    /// librdkafka does not fetch that partition until it is assigned again. (With the service's default, `earliest`,
    /// librdkafka resets the position instead and logs a warning naming the partition.)
    OffsetOutOfRange,
    /// librdkafka marked the error fatal (`ERR__FATAL`; e.g. a fenced static member): the
    /// consumer cannot go on, and the service stops.
    Fatal,
    /// The connection to a broker, or a partition leader or group coordinator, is away or
    /// moving (`ERR__TRANSPORT`, `ERR__ALL_BROKERS_DOWN`, `NOT_COORDINATOR`, ...): librdkafka
    /// retries; nothing is skipped.
    Broker,
    /// Anything else librdkafka reports to the consumer (a topic not authorized or gone, a
    /// committed offset it could not read, `max.poll.interval.ms` exceeded, ...).
    Other,
}

impl ConsumerErrorKind {
    /// Every kind, in a fixed order (metrics iterate this).
    pub const ALL: [ConsumerErrorKind; 6] = [
        ConsumerErrorKind::BadMessage,
        ConsumerErrorKind::BadCompression,
        ConsumerErrorKind::OffsetOutOfRange,
        ConsumerErrorKind::Fatal,
        ConsumerErrorKind::Broker,
        ConsumerErrorKind::Other,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            ConsumerErrorKind::BadMessage => "bad_message",
            ConsumerErrorKind::BadCompression => "bad_compression",
            ConsumerErrorKind::OffsetOutOfRange => "offset_out_of_range",
            ConsumerErrorKind::Fatal => "fatal",
            ConsumerErrorKind::Broker => "broker",
            ConsumerErrorKind::Other => "other",
        }
    }

    /// Position in [`ConsumerErrorKind::ALL`], for counter arrays.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The kind of an error returned by the consumer's `poll`; `None` for what is not an
    /// error (`PartitionEOF`, only with `enable.partition.eof`).
    pub fn of(e: &KafkaError) -> Option<ConsumerErrorKind> {
        match e {
            KafkaError::PartitionEOF(_) => None,
            KafkaError::MessageConsumptionFatal(_) => Some(ConsumerErrorKind::Fatal),
            other => Some(
                other
                    .rdkafka_error_code()
                    .map_or(ConsumerErrorKind::Other, ConsumerErrorKind::of_code),
            ),
        }
    }

    /// The kind of a librdkafka error code reported to the consumer.
    pub fn of_code(code: RDKafkaErrorCode) -> ConsumerErrorKind {
        use RDKafkaErrorCode as C;
        match code {
            C::BadMessage | C::InvalidMessage | C::NotImplemented => ConsumerErrorKind::BadMessage,
            C::BadCompression => ConsumerErrorKind::BadCompression,
            C::OffsetOutOfRange | C::AutoOffsetReset => ConsumerErrorKind::OffsetOutOfRange,
            C::Fatal => ConsumerErrorKind::Fatal,
            C::BrokerTransportFailure
            | C::AllBrokersDown
            | C::Resolve
            | C::OperationTimedOut
            | C::RequestTimedOut
            | C::BrokerNotAvailable
            | C::NetworkException
            | C::LeaderNotAvailable
            | C::NotLeaderForPartition
            | C::CoordinatorLoadInProgress
            | C::CoordinatorNotAvailable
            | C::NotCoordinator => ConsumerErrorKind::Broker,
            _ => ConsumerErrorKind::Other,
        }
    }

    /// What follows an error of this kind (for the log line).
    pub fn next(self) -> &'static str {
        match self {
            ConsumerErrorKind::BadMessage => {
                "librdkafka skipped a message set it could not parse: its records are not processed (a gap in one input partition)"
            }
            ConsumerErrorKind::BadCompression => {
                "librdkafka skipped a message set it could not decompress: its records are not processed (a gap in one input partition)"
            }
            ConsumerErrorKind::OffsetOutOfRange => {
                "an input partition has no valid position (out of range, or nothing committed) and auto.offset.reset is error: librdkafka does not fetch that partition until it is assigned again"
            }
            ConsumerErrorKind::Fatal => "the consumer cannot go on: the service stops",
            ConsumerErrorKind::Broker => "librdkafka retries; nothing is skipped",
            ConsumerErrorKind::Other => "librdkafka goes on",
        }
    }

    /// Whether the service stops on it.
    pub fn stops_the_service(self) -> bool {
        self == ConsumerErrorKind::Fatal
    }

    /// Whether it is logged at error level (all but [`ConsumerErrorKind::Broker`], which
    /// every broker restart causes and librdkafka recovers from: a warning).
    pub fn is_error(self) -> bool {
        self != ConsumerErrorKind::Broker
    }
}

impl std::fmt::Display for ConsumerErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use RDKafkaErrorCode as C;

    fn kind(e: KafkaError) -> Option<&'static str> {
        ConsumerErrorKind::of(&e).map(ConsumerErrorKind::as_str)
    }

    #[test]
    fn unreadable_message_sets_are_bad_message_or_bad_compression() {
        for code in [C::BadMessage, C::InvalidMessage, C::NotImplemented] {
            assert_eq!(
                kind(KafkaError::MessageConsumption(code)),
                Some("bad_message"),
                "{code:?}"
            );
        }
        assert_eq!(
            kind(KafkaError::MessageConsumption(C::BadCompression)),
            Some("bad_compression")
        );
    }

    #[test]
    fn out_of_range_positions_are_offset_out_of_range() {
        for code in [C::AutoOffsetReset, C::OffsetOutOfRange] {
            assert_eq!(
                kind(KafkaError::MessageConsumption(code)),
                Some("offset_out_of_range"),
                "{code:?}"
            );
        }
    }

    #[test]
    fn fatal_is_the_flag_or_the_code_and_only_fatal_stops() {
        // librdkafka's fatal flag wins over the code.
        assert_eq!(
            kind(KafkaError::MessageConsumptionFatal(C::BadMessage)),
            Some("fatal")
        );
        assert_eq!(
            kind(KafkaError::MessageConsumption(C::Fatal)),
            Some("fatal")
        );
        for k in ConsumerErrorKind::ALL {
            assert_eq!(k.stops_the_service(), k == ConsumerErrorKind::Fatal, "{k}");
        }
    }

    #[test]
    fn connectivity_is_broker_and_the_rest_other() {
        for code in [
            C::BrokerTransportFailure,
            C::AllBrokersDown,
            C::NotCoordinator,
        ] {
            assert_eq!(
                kind(KafkaError::MessageConsumption(code)),
                Some("broker"),
                "{code:?}"
            );
        }
        for code in [
            C::TopicAuthorizationFailed,
            C::UnknownTopicOrPartition,
            C::PollExceeded,
            C::MessageSizeTooLarge,
        ] {
            assert_eq!(
                kind(KafkaError::MessageConsumption(code)),
                Some("other"),
                "{code:?}"
            );
        }
        // An error without a librdkafka code.
        assert_eq!(kind(KafkaError::NoMessageReceived), Some("other"));
        assert!(!ConsumerErrorKind::Broker.is_error() && ConsumerErrorKind::Other.is_error());
    }

    #[test]
    fn partition_eof_is_not_an_error() {
        assert_eq!(kind(KafkaError::PartitionEOF(3)), None);
    }

    #[test]
    fn kinds_index_their_position_and_names_are_distinct() {
        let mut names: Vec<&str> = ConsumerErrorKind::ALL.map(ConsumerErrorKind::as_str).into();
        for (i, k) in ConsumerErrorKind::ALL.iter().enumerate() {
            assert_eq!(k.index(), i);
        }
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ConsumerErrorKind::ALL.len());
    }
}
