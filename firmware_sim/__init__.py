"""Stage 0, devices: simulated reefer trucks, cold rooms and RFID readers publishing over MQTT."""
